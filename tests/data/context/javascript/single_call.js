const fs = require("fs");

function readConfig(path) {
  const raw = fs.readFileSync(path, "utf8");
  return JSON.parse(<|cursor|>);
}

module.exports = { readConfig };
