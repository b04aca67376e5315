fn main() {
    let y = <PROPOSED>)x</PROPOSED><EXPECTED></EXPECTED>;
    println!("{}", y);
}
