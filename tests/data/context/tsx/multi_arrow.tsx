export const Button = (props: { label: string }) => {
  <|cursor|>
};
