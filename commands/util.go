package commands

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
)

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:12]
}

func pathMatch(pattern, name string) (bool, error) { return path.Match(pattern, name) }
