"""`train`: corpus -> tokenizer -> continued pretraining -> LoRA SFT; mixture ablations."""
