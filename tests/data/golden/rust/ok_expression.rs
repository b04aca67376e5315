fn main() {
    let y = <PROPOSED>a + b</PROPOSED><EXPECTED>a + b</EXPECTED>;
    println!("{}", y);
}
