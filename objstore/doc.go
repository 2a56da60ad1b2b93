// Package objstore uploads finished recording files to S3-compatible storage
// (minio-go) and answers the URL that becomes a callback's download_url: the
// object's URL, a CDN URL in front of it, or a presigned GET URL.
package objstore
