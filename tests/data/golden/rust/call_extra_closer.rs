fn main() {
    let y = foo(<PROPOSED>a, b) + 1)</PROPOSED><EXPECTED>a, b) + 1</EXPECTED>;
    println!("{}", y);
}
