import java.util.List;

public class Util {
    public static int total(List<Integer> xs) {
        int sum = 0;
        for (int x : xs) {
            sum += <|cursor|>;
        }
        return sum;
    }
}
