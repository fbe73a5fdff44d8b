"""Example handlers mirroring the user's design document; `corral dev` loads them by default."""
