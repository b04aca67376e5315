import React from "react";

export function Hello({ name }: { name: string }) {
  const upper = name.toUpperCase();
  return <div className="hello">{<|cursor|>}</div>;
}
