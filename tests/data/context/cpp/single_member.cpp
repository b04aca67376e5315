#include <vector>

class Stack {
public:
    void push(int v) { items_.push_back(<|cursor|>); }
private:
    std::vector<int> items_;
};
