// Compute the <|cursor|> distance
export const x: number = 1;
