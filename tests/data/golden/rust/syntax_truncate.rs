fn main() {
    let y = foo(a<PROPOSED>, b = = c</PROPOSED><EXPECTED>, b</EXPECTED>);
    println!("{}", y);
}
