#!/bin/bash
main() {
  local x=1
  echo hi <PROPOSED># see (a</PROPOSED><EXPECTED># see (a</EXPECTED>
  echo done
}
