fn main() {
    if a > 0 {
        <PROPOSED>f();
    }
    g();</PROPOSED><EXPECTED>f();</EXPECTED><MODE>multi</MODE>
    }
    println!("{}", y);
}
