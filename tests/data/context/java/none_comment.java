public class Greeter {
    // Says hello <|cursor|> to the user.
    public void greet() {}
}
