#!/bin/bash
main() {
  local x=1
  y=<PROPOSED>$(ls</PROPOSED><EXPECTED>$(ls)</EXPECTED>
  echo done
}
