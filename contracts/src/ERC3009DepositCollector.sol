// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title EIP-3009 deposit collector for x402 batch-settlement channels
/// @notice Moves a channel deposit from the payer to the settlement contract with the payer's
/// EIP-3009 `ReceiveWithAuthorization` signature, so that a payer deposits without sending a
/// transaction or holding gas: whoever submits `deposit` pays for it.
/// @dev The chain carries this code from genesis at 0x4020806089470a89826cB9fB1f4059150b550004
/// and the settlement contract at its canonical address, which is a constant here rather than
/// a constructor argument, so that runtime code copied to the address is complete.
///
/// `collectorData = abi.encode(uint256 validAfter, uint256 validBefore, uint256 salt, bytes
/// signature)`. The authorization's nonce is `keccak256(abi.encode(channelId, salt))`, so a
/// signature deposits into one channel only, once. `receiveWithAuthorization` (not
/// `transferWithAuthorization`) requires the collector itself to be the payee and the caller,
/// so nobody can front-run the authorization into a plain transfer.
contract ERC3009DepositCollector {
    /// The settlement contract at its canonical address.
    address public constant x402BatchSettlement = 0x4020074e9dF2ce1deE5A9C1b5c3f541D02a10003;

    error OnlyX402BatchSettlement();
    error InvalidSignatureLength();
    error SafeERC20FailedOperation(address token);

    function collect(address payer, address token, uint256 amount, bytes32 channelId, bytes calldata collectorData)
        external
    {
        if (msg.sender != x402BatchSettlement) revert OnlyX402BatchSettlement();
        (uint256 validAfter, uint256 validBefore, uint256 salt, bytes memory signature) =
            abi.decode(collectorData, (uint256, uint256, uint256, bytes));
        _receive(token, payer, amount, validAfter, validBefore, keccak256(abi.encode(channelId, salt)), signature);
        (bool ok, bytes memory result) =
            token.call(abi.encodeWithSelector(IERC3009.transfer.selector, x402BatchSettlement, amount));
        if (!ok) {
            if (result.length == 0) revert SafeERC20FailedOperation(token);
            assembly ("memory-safe") {
                revert(add(result, 32), mload(result))
            }
        }
        bool accepted = result.length == 0 ? token.code.length > 0 : (result.length >= 32 && uint256(bytes32(result)) == 1);
        if (!accepted) revert SafeERC20FailedOperation(token);
    }

    /// A separate frame: `collect`'s decoded arguments and these would not fit one stack.
    function _receive(
        address token,
        address payer,
        uint256 amount,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) private {
        if (signature.length != 65) revert InvalidSignatureLength();
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := mload(add(signature, 32))
            s := mload(add(signature, 64))
            v := byte(0, mload(add(signature, 96)))
        }
        // The (v, r, s) form: every EIP-3009 token has it (the `bytes` overload is newer).
        IERC3009(token).receiveWithAuthorization(payer, address(this), amount, validAfter, validBefore, nonce, v, r, s);
    }
}

interface IERC3009 {
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external;
    function transfer(address to, uint256 value) external returns (bool);
}
