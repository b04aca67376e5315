#include <stdlib.h>

int *make_array(size_t n) {
    <|cursor|>
}
