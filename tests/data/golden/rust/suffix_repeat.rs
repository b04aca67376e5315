fn main() {
    let y = <PROPOSED>compute(a) + offset</PROPOSED><EXPECTED>compute(a)</EXPECTED> + offset;
    println!("{}", y);
}
