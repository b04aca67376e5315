/* Allocate an array of <|cursor|> integers. */
int *make_array(int n);
