fn main() {
    let y = <PROPOSED>foo(a</PROPOSED><EXPECTED>foo(a)</EXPECTED>;
    println!("{}", y);
}
