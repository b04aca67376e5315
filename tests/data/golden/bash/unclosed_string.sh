#!/bin/bash
main() {
  local x=1
  y=<PROPOSED>"abc</PROPOSED><EXPECTED>"abc"</EXPECTED>
  echo done
}
