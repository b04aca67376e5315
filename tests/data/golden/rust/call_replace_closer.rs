fn main() {
    let y = foo(<PROPOSED>a, b)</PROPOSED><EXPECTED>a, b)</EXPECTED><REPLACED>)</REPLACED>;
    println!("{}", y);
}
