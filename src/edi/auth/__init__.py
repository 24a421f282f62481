"""Authentication for the HTTP API: OAuth 2 access tokens (JWT) bound to a client key by DPoP (RFC 9449).

`tokens` verifies an access token and its DPoP proof and says which HER-ids the caller holds; `dpop` makes and
checks proofs; `jwks` fetches the issuer's signing keys; `replay` remembers proof ids; `dev` is the local issuer
that a development deployment trusts (`edi dev token`).
"""
