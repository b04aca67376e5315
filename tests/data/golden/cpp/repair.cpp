int main() {
    auto y = <PROPOSED>x + foo(1 2)</PROPOSED><REPAIR>x + foo(1, 2)</REPAIR><EXPECTED>x + foo(1, 2)</EXPECTED>;
    return 0;
}
