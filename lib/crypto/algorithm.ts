/**
 * The client-side encryption's name as the manifest records it. Apart from lib/crypto/envelope.ts
 * so that checking a manifest loads no cipher code (start-up of every export, issue 17).
 */
export const CLIENT_ENCRYPTION_ALGORITHM = 'segferry-aes-256-gcm-chunked-v1';
