package config

import (
	"fmt"
	"strings"
)

// Error is a configuration mistake: which file and key, what is wrong, and
// what to do about it.
type Error struct {
	File string // env file, "" when the value came from a flag or the environment
	Key  string
	Msg  string
	Fix  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Hint is the fix, printed by cmd as a hint line.
func (e *Error) Hint() string { return e.Fix }

func errorf(file, key, fix, format string, args ...any) *Error {
	return &Error{File: file, Key: key, Msg: fmt.Sprintf(format, args...), Fix: fix}
}

// closestKey returns the known key nearest to name by edit distance, and the
// distance.
func closestKey(name string, role Role) (string, int) {
	best, bestD := "", 1<<30
	for _, k := range Keys {
		if role != "" && k.Role != role {
			continue
		}
		if d := editDistance(name, k.Name); d < bestD {
			best, bestD = k.Name, d
		}
	}
	return best, bestD
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
