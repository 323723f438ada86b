//go:build race

package celdriver_test

// raceEnabled: the race detector slows evaluation down some twentyfold.
const raceEnabled = true
