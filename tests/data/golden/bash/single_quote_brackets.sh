#!/bin/bash
main() {
  local x=1
  y=<PROPOSED>'(['</PROPOSED><EXPECTED>'(['</EXPECTED>
  echo done
}
