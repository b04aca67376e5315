'use strict'

// A first-in first-out queue with a size limit (hand-written test fixture).
class Queue {
  constructor (limit = Infinity) {
    this.items = []
    this.limit = limit
  }

  push (value) {
    if (this.items.length >= this.limit) {
      throw new Error('queue is full')
    }
    this.items.push(value)
    return this.items.length
  }

  shift () {
    if (this.items.length === 0) {
      return undefined
    }
    return this.items.shift()
  }

  get size () {
    return this.items.length
  }
}

function drain (queue, handler) {
  let count = 0
  while (queue.size > 0) {
    handler(queue.shift())
    count += 1
  }
  return count
}

module.exports = { Queue, drain }
