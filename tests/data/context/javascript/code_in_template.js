const msg = `hello ${na<|cursor|>} world`;
