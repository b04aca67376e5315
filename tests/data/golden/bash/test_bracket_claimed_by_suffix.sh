#!/bin/bash
main() {
  local x=1
  if [ <PROPOSED>-n "$x" ]</PROPOSED><EXPECTED>-n "$x"</EXPECTED> ]; then echo y; fi
  echo done
}
