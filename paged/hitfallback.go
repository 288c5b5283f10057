package paged

// stuck reports whether admitting waiting s as planned (p, answered a)
// with chunks of at most k tokens (k 0: whole, Admit) is refused for
// good: never (AdmitChunk's ErrNever where it cuts the prompt,
// chunkNever), or, admitted whole, not now with no sequence running to
// give blocks back (what holds them, prefix pins, would not let go).
func (m *Manager) stuck(s *sequence, p plan, a Admission, k int) bool {
	if k > 0 && k < len(s.tokens)-p.hits*m.bs {
		never, _ := m.chunkNever(s, p, a, k)
		return never
	}
	return a == AdmitNever || a == AdmitLater && m.nrunning == 0
}

// planFallback is planAdmit for an admission of s in chunks of at most k
// tokens (0: whole), falling back from the longest hit where it is
// stuck: in the default mode, when the longest hit is refused for good
// (stuck) and a miss is not, it plans the longest shorter hit that is
// not (a hit ends where every group can end one: lookupGroups cut to
// hitCap), or the miss, and leaves the cap on (capOn, fell) for the
// admission's plans to come; the caller calls uncap when done. A hit
// costs more than a miss where its blocks, held from the admission on,
// outweigh what it saves: a window group holds the hit's last window
// besides the new tokens' blocks, a State group the checkpoint's pages;
// and a long hit leaves few tokens to compute, which AdmitChunk admits
// whole rather than chunk by chunk. A longest hit that is not stuck, a
// miss that is, or a cap already on, leave the plan as it is. vLLM's
// decisions (UnifiedFreeQueue) never fall back. The walk plans the
// shorter hits from the longest down, each a lookup: paid only where the
// admission would otherwise be refused for good.
func (m *Manager) planFallback(s *sequence, k int) (plan, Admission) {
	p, a := m.planAdmit(s)
	return m.fallBack(s, p, a, k)
}

// fallBack is planFallback given planAdmit's answer for s, p and a.
func (m *Manager) fallBack(s *sequence, p plan, a Admission, k int) (plan, Admission) {
	if !m.hybrid() || m.cfg.UnifiedFreeQueue || m.ret.capOn || p.hits == 0 || !m.stuck(s, p, a, k) {
		return p, a
	}
	longest := p.hits
	m.ret.capOn, m.ret.hitCap = true, 0
	if q, b := m.planAdmit(s); m.stuck(s, q, b, k) {
		// The miss is refused too: the longest hit's refusal stands.
		m.ret.capOn = false
		return m.planAdmit(s)
	}
	m.ret.fell = true
	for c := longest - 1; c > 0; {
		m.ret.hitCap = c
		q, b := m.planAdmit(s)
		if q.hits == 0 {
			break
		}
		if !m.stuck(s, q, b, k) {
			return q, b
		}
		c = q.hits - 1
	}
	m.ret.hitCap = 0
	return m.planAdmit(s)
}

// uncap ends planFallback's cap.
func (m *Manager) uncap() { m.ret.capOn, m.ret.fell, m.ret.hitCap = false, false, 0 }
