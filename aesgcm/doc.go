// Package aesgcm encrypts secrets at rest (callback keys) with AES-256-GCM and
// loads the master key from the environment or from a 0600 file in the data
// directory. It implements livehooks.Cipher.
package aesgcm
