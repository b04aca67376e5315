class PinAuth:
    def __init__(self, store):
        self.store = store
        self.failures = store.counter("pin_failures")

    def check(self, pin):
        if self.failures.value >= 10:
            return "locked"
        if pin != self.store.pin:
            self.failures.increment()
            return "wrong"
        self.failures.reset()
        return "ok"

    def locked(self):
        return self.failures.value >= 10
