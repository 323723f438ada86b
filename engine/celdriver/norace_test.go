//go:build !race

package celdriver_test

const raceEnabled = false
