fn main() {
    let y = <PROPOSED>"abc</PROPOSED><EXPECTED>"abc"</EXPECTED>;
    println!("{}", y);
}
