#!/usr/bin/env bash
set -euo pipefail

main() {
  local name="$1"
  echo <|cursor|>
}

main "$@"
