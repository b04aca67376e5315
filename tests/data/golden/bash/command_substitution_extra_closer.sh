#!/bin/bash
main() {
  local x=1
  y=$(<PROPOSED>ls -l) x)</PROPOSED><EXPECTED>ls -l) x</EXPECTED>
  echo done
}
