fn main() {
    let y = <PROPOSED>vec![1, 2</PROPOSED><EXPECTED>vec![1, 2]</EXPECTED>;
    println!("{}", y);
}
