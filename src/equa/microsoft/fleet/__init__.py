"""The fleet engine: every linked group tracked in delta rounds of up to 50, changes folded into targeted runs."""
