#!/bin/bash
main() {
  local x=1
  y=<PROPOSED>)x</PROPOSED><EXPECTED></EXPECTED>
  echo done
}
