/* The few RP2040 registers the device firmware touches (addresses from the RP2040 datasheet). */
#ifndef RP2040_REGS_H
#define RP2040_REGS_H

#include <stdint.h>

#define REG(addr) (*(volatile uint32_t *)(addr))
#define ATOMIC_CLR 0x3000u  /* write-1-to-clear alias of every APB register */

#define RESETS_BASE 0x4000c000u
#define RESETS_RESET (RESETS_BASE + 0x0)
#define RESETS_DONE (RESETS_BASE + 0x8)
#define RESET_IO_BANK0 (1u << 5)
#define RESET_PADS_BANK0 (1u << 8)
#define RESET_PLL_SYS (1u << 12)
#define RESET_UART0 (1u << 22)

#define XOSC_BASE 0x40024000u
#define XOSC_CTRL (XOSC_BASE + 0x00)
#define XOSC_STATUS (XOSC_BASE + 0x04)
#define XOSC_STARTUP (XOSC_BASE + 0x0c)

#define PLL_SYS_BASE 0x40028000u
#define PLL_CS (PLL_SYS_BASE + 0x0)
#define PLL_PWR (PLL_SYS_BASE + 0x4)
#define PLL_FBDIV (PLL_SYS_BASE + 0x8)
#define PLL_PRIM (PLL_SYS_BASE + 0xc)

#define CLOCKS_BASE 0x40008000u
#define CLK_REF_CTRL (CLOCKS_BASE + 0x30)
#define CLK_REF_SELECTED (CLOCKS_BASE + 0x38)
#define CLK_SYS_CTRL (CLOCKS_BASE + 0x3c)
#define CLK_SYS_SELECTED (CLOCKS_BASE + 0x44)
#define CLK_PERI_CTRL (CLOCKS_BASE + 0x48)

#define IO_BANK0_GPIO_CTRL(n) (0x40014000u + 4u + 8u * (n))
#define FUNCSEL_UART 2u
#define FUNCSEL_SIO 5u

#define SIO_GPIO_OUT_SET 0xd0000014u
#define SIO_GPIO_OUT_CLR 0xd0000018u
#define SIO_GPIO_OE_SET 0xd0000024u

#define UART0_BASE 0x40034000u
#define UART_DR (UART0_BASE + 0x00)
#define UART_FR (UART0_BASE + 0x18)
#define UART_IBRD (UART0_BASE + 0x24)
#define UART_FBRD (UART0_BASE + 0x28)
#define UART_LCR_H (UART0_BASE + 0x2c)
#define UART_CR (UART0_BASE + 0x30)
#define UART_FR_RXFE (1u << 4)
#define UART_FR_TXFF (1u << 5)

#define SYST_CSR 0xe000e010u
#define SYST_RVR 0xe000e014u
#define SYST_CVR 0xe000e018u

#endif
