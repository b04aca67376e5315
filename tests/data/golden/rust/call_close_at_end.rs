fn main() {
    let y = foo(<PROPOSED>a, b</PROPOSED><EXPECTED>a, b</EXPECTED>);
    println!("{}", y);
}
