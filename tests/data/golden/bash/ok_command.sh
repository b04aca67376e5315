#!/bin/bash
main() {
  local x=1
  <PROPOSED>echo "$x"</PROPOSED><EXPECTED>echo "$x"</EXPECTED>
  echo done
}
