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

// version is the first byte of every sealed value. It is authenticated (as
// additional data) so that a future format can be told apart and a flipped
// version byte is detected like any other tampering.
const version byte = 1

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

// Seal encrypts plaintext with a fresh random nonce and returns
// version || nonce || ciphertext+tag.
func (c *Cipher) Seal(plaintext []byte) ([]byte, error) {
	out := make([]byte, 1+nonceSize, Overhead+len(plaintext))
	out[0] = version
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("aesgcm: read nonce: %w", err)
	}
	return c.aead.Seal(out, out[1:1+nonceSize], plaintext, out[:1]), nil
}

// Open decrypts a value sealed by Seal with the same key. It returns
// ErrDecrypt for anything else, never a part of the value.
func (c *Cipher) Open(sealed []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, ErrDecrypt
	}
	if sealed[0] != version {
		return nil, fmt.Errorf("aesgcm: unknown format version %d", sealed[0])
	}
	plain, err := c.aead.Open(nil, sealed[1:1+nonceSize], sealed[1+nonceSize:], sealed[:1])
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}
