/// A first-in, first-out queue with amortised O(1) push and pop.
struct FIFO<Element>: Sendable where Element: Sendable {
    private var storage: [Element] = []
    private var head = 0

    var isEmpty: Bool { head == storage.count }
    var count: Int { storage.count - head }
    var first: Element? { isEmpty ? nil : storage[head] }

    mutating func append(_ element: Element) { storage.append(element) }

    mutating func popFirst() -> Element? {
        guard !isEmpty else { return nil }
        let element = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: storage.capacity <= 1024)
            head = 0
        } else if head >= 1024, head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return element
    }

    /// Inserts `element` before the first element matching `predicate`, or last if none does; O(n).
    mutating func insert(_ element: Element, beforeFirstWhere predicate: (Element) -> Bool) {
        let position = storage[head...].firstIndex(where: predicate) ?? storage.count
        storage.insert(element, at: position)
    }

    /// Removes the first element matching `predicate`; O(n).
    mutating func removeFirst(where predicate: (Element) -> Bool) -> Element? {
        guard let index = storage[head...].firstIndex(where: predicate) else { return nil }
        return storage.remove(at: index)
    }

    /// Removes every element matching `predicate`.
    mutating func removeAll(where predicate: (Element) -> Bool) {
        storage.removeSubrange(..<head)
        head = 0
        storage.removeAll(where: predicate)
    }
}
