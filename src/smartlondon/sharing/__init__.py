"""LODA: governed data sharing between public bodies, privacy by design, and a public record of uses."""
