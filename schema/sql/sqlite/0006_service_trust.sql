-- How enrichment named the mail service behind an address: `ptr` (the PTR name, which
-- whoever runs the address chooses), `as_domain`, `asn` or `as_name` (the IP
-- databases, which name the network). Only an ESP named by its network counts as a
-- sender of the domain's DKIM-signed mail; a service named by PTR is shown, not trusted.
ALTER TABLE sources ADD COLUMN service_by TEXT;
