package bench

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// settle refuses a step whose held, free and unusable slots do not add up
// to the budget: a memory model that loses or invents slots would
// otherwise go on with shares that no longer add up to 1. No model built
// through the API does, so the guard is called directly.
func TestAudit175SettleRefusesSlotsThatDoNotAddUp(t *testing.T) {
	for _, c := range [][3]int{{3, 3, 0}, {10, 1, 0}, {4, 4, 1}, {0, 0, 0}} {
		s := FragSlots{Step: 7, Budget: 10}
		assert.Panics(t, func() { s.settle(c[0], c[1], c[2], false) }, "%v", c)
	}
	s := FragSlots{Step: 7, Budget: 10}
	assert.NotPanics(t, func() { s.settle(5, 4, 1, true) })
	assert.Equal(t, FragSlots{Step: 7, Budget: 10, External: 5}, s)
}
