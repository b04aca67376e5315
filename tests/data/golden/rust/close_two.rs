fn main() {
    let y = foo(a[<PROPOSED>0], 1)</PROPOSED><EXPECTED>0], 1)</EXPECTED>;
    println!("{}", y);
}
