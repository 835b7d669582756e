"""The web app: a prosumer app and a staff console over HTTPS, served by
`openvpp serve --web-listen` beside the gRPC API, through the same domain
services and tenant rules."""
