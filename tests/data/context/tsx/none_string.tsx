export const title: string = "My <|cursor|> App";
