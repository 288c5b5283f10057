package sched

// queue is the waiting queue. Under FCFS it is a deque: new requests at
// the back, preempted ones pushed back at the front. Under Priority it is a
// binary heap on (priority, submission, sample), so a preempted sequence
// goes back exactly where its key puts it.
type queue struct {
	prio bool
	buf  []*entry
	head int // FCFS: buf[head:] is the queue
}

// front leaves room to push preempted sequences at the front.
const front = 64

func (q *queue) len() int { return len(q.buf) - q.head }

func (q *queue) peek() *entry { return q.buf[q.head] }

func (q *queue) pushBack(e *entry) {
	if q.prio {
		q.push(e)
		return
	}
	if q.buf == nil {
		q.buf = make([]*entry, front, front+64)
		q.head = front
	}
	if len(q.buf) == cap(q.buf) && q.head-front >= q.len() {
		// Full, and at least half of it popped slots: slide the queue
		// back to the room in front rather than grow. Under sustained
		// load the queue never empties (pop starts over only then), and
		// the popped slots would pile up, a word per request ever queued.
		n := copy(q.buf[front:], q.buf[q.head:])
		clear(q.buf[front+n:])
		q.buf, q.head = q.buf[:front+n], front
	}
	q.buf = append(q.buf, e)
}

// pushFront requeues a preempted sequence.
func (q *queue) pushFront(e *entry) {
	if q.prio {
		q.push(e)
		return
	}
	if q.head == 0 {
		grown := make([]*entry, len(q.buf)+front, cap(q.buf)+front)
		copy(grown[front:], q.buf)
		q.buf, q.head = grown, front
	}
	q.head--
	q.buf[q.head] = e
}

func (q *queue) pop() *entry {
	if q.prio {
		return q.removeAt(0)
	}
	e := q.buf[q.head]
	q.buf[q.head] = nil
	q.head++
	if q.head == len(q.buf) { // empty: start over, keeping the room in front
		q.buf, q.head = q.buf[:front], front
	}
	return e
}

// remove takes e out of the queue wherever it is (cancellation).
func (q *queue) remove(e *entry) {
	if q.prio {
		q.removeAt(e.heap)
		return
	}
	for i := q.head; i < len(q.buf); i++ {
		if q.buf[i] == e {
			copy(q.buf[i:], q.buf[i+1:])
			q.buf[len(q.buf)-1] = nil
			q.buf = q.buf[:len(q.buf)-1]
			return
		}
	}
	panic("sched: waiting sequence not in the queue")
}

// less orders the heap: lower priority value, then earlier submission,
// then lower sample index.
func less(a, b *entry) bool {
	if a.req.prio != b.req.prio {
		return a.req.prio < b.req.prio
	}
	if a.req.id != b.req.id {
		return a.req.id < b.req.id
	}
	return a.idx < b.idx
}

func (q *queue) push(e *entry) {
	e.heap = len(q.buf)
	q.buf = append(q.buf, e)
	q.up(e.heap)
}

func (q *queue) removeAt(i int) *entry {
	e := q.buf[i]
	last := len(q.buf) - 1
	if i != last {
		q.buf[i] = q.buf[last]
		q.buf[i].heap = i
	}
	q.buf[last] = nil
	q.buf = q.buf[:last]
	if i != last {
		if !q.down(i) {
			q.up(i)
		}
	}
	e.heap = -1
	return e
}

func (q *queue) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !less(q.buf[i], q.buf[p]) {
			return
		}
		q.swap(i, p)
		i = p
	}
}

// down sifts i down and reports whether it moved.
func (q *queue) down(i int) bool {
	start := i
	for {
		c := 2*i + 1
		if c >= len(q.buf) {
			break
		}
		if r := c + 1; r < len(q.buf) && less(q.buf[r], q.buf[c]) {
			c = r
		}
		if !less(q.buf[c], q.buf[i]) {
			break
		}
		q.swap(i, c)
		i = c
	}
	return i > start
}

func (q *queue) swap(i, j int) {
	q.buf[i], q.buf[j] = q.buf[j], q.buf[i]
	q.buf[i].heap, q.buf[j].heap = i, j
}
