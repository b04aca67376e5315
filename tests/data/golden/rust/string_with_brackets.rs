fn main() {
    let y = <PROPOSED>"(["</PROPOSED><EXPECTED>"(["</EXPECTED>;
    println!("{}", y);
}
