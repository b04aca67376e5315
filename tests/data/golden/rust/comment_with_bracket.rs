fn main() {
    let y = 1; <PROPOSED>// see (a</PROPOSED><EXPECTED>// see (a</EXPECTED>
    println!("{}", y);
}
