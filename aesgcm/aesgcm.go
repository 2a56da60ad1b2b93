package aesgcm

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/livehooks/livehooks"
)

// KeySize is the length of a master key: AES-256.
const KeySize = 32

// The first byte of every sealed value names its format. It is authenticated
// (as additional data) so that a flipped version byte is detected like any
// other tampering.
const (
	// versionUnbound values were sealed before values were bound to the
	// row they are stored in: their additional data is the version byte
	// alone.
	versionUnbound byte = 1
	// version values are bound to a row: their additional data is the
	// version byte followed by the caller's (say, a project and config id).
	version byte = 2
)

// Overhead is how many bytes Seal adds to a plaintext: version, nonce, tag.
const Overhead = 1 + nonceSize + tagSize

const (
	nonceSize = 12
	tagSize   = 16
)

// ErrDecrypt is returned by Open for a value that was not sealed with this
// key, was truncated, or was altered.
var ErrDecrypt = errors.New("aesgcm: cannot decrypt: wrong master key or corrupted value")

// Cipher seals and opens values with one master key. Its zero value is not
// usable; call New. A Cipher is safe for concurrent use.
type Cipher struct {
	aead cipher.AEAD
}

var _ livehooks.Cipher = (*Cipher)(nil)

// New returns a Cipher for a 32-byte key.
func New(key []byte) (*Cipher, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("aesgcm: master key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aesgcm: %w", err)
	}
	aead, err := cipher.NewGCMWithNonceSize(block, nonceSize)
	if err != nil {
		return nil, fmt.Errorf("aesgcm: %w", err)
	}
	return &Cipher{aead: aead}, nil
}

// Seal encrypts plaintext with a fresh random nonce, bound to ad (additional
// data naming the row the value is stored in: it is authenticated, not
// stored), and returns version || nonce || ciphertext+tag.
func (c *Cipher) Seal(plaintext, ad []byte) ([]byte, error) {
	out := make([]byte, 1+nonceSize, Overhead+len(plaintext))
	out[0] = version
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("aesgcm: read nonce: %w", err)
	}
	return c.aead.Seal(out, out[1:1+nonceSize], plaintext, append([]byte{version}, ad...)), nil
}

// Open decrypts a value sealed by Seal with the same key and the same ad: a
// value moved to another row does not open. A value of the unbound format
// (sealed by an earlier livehooks) opens only with a nil ad, which is how
// a store's migration reads it to seal it again, bound; reading a row always
// passes the row's ad, so such a value never opens there. Open returns
// ErrDecrypt for anything else, never a part of the value.
func (c *Cipher) Open(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, ErrDecrypt
	}
	var aad []byte
	switch sealed[0] {
	case version:
		aad = append([]byte{version}, ad...)
	case versionUnbound:
		if ad != nil {
			return nil, fmt.Errorf("%w: the value is not bound to its row (sealed by an older livehooks and not migrated)", ErrDecrypt)
		}
		aad = []byte{versionUnbound}
	default:
		return nil, fmt.Errorf("aesgcm: unknown format version %d", sealed[0])
	}
	plain, err := c.aead.Open(nil, sealed[1:1+nonceSize], sealed[1+nonceSize:], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}
